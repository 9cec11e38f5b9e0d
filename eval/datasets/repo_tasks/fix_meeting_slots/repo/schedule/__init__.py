"""Busy times of a day (minutes, inclusive ranges) and the free slots between them."""
