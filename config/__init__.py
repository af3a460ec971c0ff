"""Configuration: settings from the environment and .env, validated at start; dev secrets."""
