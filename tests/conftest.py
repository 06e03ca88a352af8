"""Suite-wide settings. Tier folders hold their own fixtures."""
