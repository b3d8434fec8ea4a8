"""What every stage stands on: settings, the database, the clock, errors, accounts, audit, jobs, backups."""
