"""Shadows lifted within a photo: a lit photo's dark regions, which the exposure gate leaves alone."""
