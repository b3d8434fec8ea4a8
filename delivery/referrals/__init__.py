"""Referral to order: intake from every channel, eligibility, CSV import, geocoding, the review queue."""
