"""Analysis of the data before modelling: exploratory summaries and their report."""
