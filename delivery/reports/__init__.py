"""The numbers funders ask for, read from the timeline."""
