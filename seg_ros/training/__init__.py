"""Offline training and evaluation: datasets, transforms, losses, metrics and the loops."""
