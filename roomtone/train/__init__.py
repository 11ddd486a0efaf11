"""roomtone.train"""
