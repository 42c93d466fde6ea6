"""Readers for each data source and the episodic DataModules built on them."""
