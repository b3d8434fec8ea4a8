"""Texts to patients in their language, and what their replies mean (issue 13 item 4).

- `rules`: plain functions: quiet hours, when the day-before text goes, what a reply means, who may
  be texted, a phone number in E.164.
- `templates`: the texts as a Babel catalogue (domain `sms`, one per language).
- `outgoing`: texts made from the timeline (delivered, left at the door, a missed attempt
  rescheduled) and from a published plan (the day before), and the `text_send` job that hands each
  to Twilio, retrying what is transient and giving up on a number Twilio calls invalid.
- `replies`: an inbound text (1, 2, an opt-out word, anything else) and the coordinators' inbox.
"""
