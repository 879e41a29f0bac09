"""bootbench: cold-start benchmark of real-time speech-to-speech services on Locust."""
