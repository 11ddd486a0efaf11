"""roomtone.models"""
