"""roomtone.features"""
