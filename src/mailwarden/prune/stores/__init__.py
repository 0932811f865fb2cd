"""Mail stores that ``mailwarden prune`` can read and change, one module per store type."""
