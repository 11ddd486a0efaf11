"""The data -> settings bridge (between prepare/models and train/expect): measure a prepared dataset and turn
the measurements into a resolved ``TrainConfig`` with one reason per choice.

    from roomtone.recipe import recipe, measure
"""

from roomtone.recipe.measure import measure
from roomtone.recipe.rules import Choice, Recipe, recipe

__all__ = ["Choice", "Recipe", "measure", "recipe"]
