"""Engine op runtime: engine cache, native fallback, and running converted graphs."""
