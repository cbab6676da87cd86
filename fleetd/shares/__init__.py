"""Jobs, duplicate detection, vardiff and the share validator that calls the native core."""
