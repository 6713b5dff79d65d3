"""Operations: process supervision, systemd integration, installer, backup and retention."""
