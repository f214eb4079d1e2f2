"""Analyses over an image's file trees: layers and waste, Python, ML stack, OS, models."""
