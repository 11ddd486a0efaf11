"""roomtone.prepare: audit, manifest and splits, trimming and windows, and the simulated world (noise at a target
SNR, colored noise, babble, rooms, microphones) as functions and as randomized transforms.

    from roomtone.prepare import prepare, mix_at_snr, AddNoise, Reverberate, SimulateMicrophone
    prepare("recordings/", "prepared/", label_pattern=r"(?P<label>\\d)_(?P<group>[a-z]+)_\\d+\\.wav")
    noisy = mix_at_snr(speech, noise, 10.0)                      # (batch, time), exact SNR

Names load on first use (importing ``roomtone.prepare`` stays cheap for the CLI). ``audit(...)`` and
``render(...)`` share their module's name, so they stay in :mod:`roomtone.prepare.audit` and
:mod:`roomtone.prepare.render`.
"""

from __future__ import annotations

from roomtone.lazy import lazy_exports

#: public name -> the submodule that defines it
_EXPORTS = {
    "prepare": "pipeline", "ManifestWarning": "pipeline",
    "audit_files": "audit", "audit_rows": "audit",
    "ManifestRow": "manifest", "read_manifest": "manifest", "write_manifest": "manifest", "labels_of": "manifest",
    "build_manifest": "folder", "manifest_from_folder": "folder", "manifest_from_csv": "folder",
    "assign_splits": "splits", "leave_groups_out_folds": "splits", "split_counts": "splits", "SplitWarning": "splits",
    "trim_bounds": "segment", "sliding_windows": "segment", "segment_rows": "segment", "fix_length": "segment",
    "AudioDataset": "dataset", "FeatureDataset": "dataset", "load_prepared": "dataset",
    "class_balanced_sampler": "dataset", "item_generator": "dataset",
    "mix_at_snr": "noise", "achieved_snr_db": "noise", "power_db": "noise",
    "colored_noise": "colored",
    "NoiseBank": "banks", "NamedBank": "banks", "RoomBank": "roombank",
    "convolve_rir": "rooms", "normalize_rir": "rooms", "measure_rt60": "rooms", "measure_drr": "rooms",
    "MicPreset": "microphones", "get_preset": "microphones", "simulate_microphone": "microphones",
    "make_condition": "conditions",
    "AddBabble": "transforms", "AddColoredNoise": "transforms", "AddNoise": "transforms", "Compose": "transforms",
    "Gain": "transforms", "OneOf": "transforms", "Reverberate": "transforms", "SimulateMicrophone": "transforms",
    "Transform": "transforms",
    "fsdd": "datasets", "synthetic_events": "datasets",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
