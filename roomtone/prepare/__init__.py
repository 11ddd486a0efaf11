"""roomtone.prepare"""
