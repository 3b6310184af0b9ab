"""`python -m src.bench`: inference and training speed, each measured in its own process, against
the keras-io recipe.
"""
