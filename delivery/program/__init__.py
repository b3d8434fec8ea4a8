"""The program: orders and their schedules, capacity, the waitlist, drivers' shifts, program settings."""
