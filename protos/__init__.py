"""Protocol sources (.proto) and their generated Python modules."""
