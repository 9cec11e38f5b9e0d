"""A grade book: scores per student, entered by hand or imported from text."""
