"""Fine-tuning from Slack: datasets, validation, jobs, watching, evaluation, deployment."""
