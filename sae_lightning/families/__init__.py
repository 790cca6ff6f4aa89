"""Feature families: parents and the children that co-fire with them (build.py, from the scan's
co-firing counts), each family named from its members' texts (naming.py)."""
