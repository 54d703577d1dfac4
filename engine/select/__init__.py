"""Selection: SQL over the `scored` view, mix tables, and writing the chosen rows as a dataset."""
