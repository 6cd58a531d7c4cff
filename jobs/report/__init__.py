"""The run report: its HTML, and where it is written and logged."""
