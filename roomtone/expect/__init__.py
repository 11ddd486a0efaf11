"""roomtone.expect"""
