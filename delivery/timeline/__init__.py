"""A referral's timeline: structured events, written with the change that caused them."""
