"""Thought texts for the scripted looping agents: varied, paraphrased, templated, prefixes."""

from __future__ import annotations

PREFIXES = ("", "Hmm. ", "OK, ", "Right, ", "Step 4: ", "Thinking again: ", "Still stuck. ")
"""Noise in front of a thought, as models add: it must not hide a paraphrase loop."""

DIVERSE = (
    "I should list the files in the repository first.",
    "The failing test expects 90 but the function returns 100.",
    "I will edit pricing.py to apply the discount before tax.",
    "All tests pass now, so I can deliver the patch.",
    "The import of Decimal is missing at the top of cart.py.",
    "Let me search memory for lessons about rounding errors.",
    "The README says the CLI takes a --verbose flag.",
    "Maybe the fixture in conftest.py creates the wrong user.",
    "I need a new option in the argument parser for the output format.",
    "The helper in utils.py is duplicated in io.py; I can merge them.",
    "Running only the cart tests will be faster.",
    "The stack trace points at line 42 of orders.py.",
    "Writing a small snippet will show how the parser splits dates.",
    "The refactor must keep the public function names unchanged.",
    "There is a typo in the variable name total_prcie.",
    "The JSON loader should reject files without a version field.",
    "I will add a test for the empty cart case.",
    "The database connection string comes from the environment.",
    "Sorting by price descending breaks the second assertion.",
    "The docstring of apply_coupon does not match its behaviour.",
)
"""Unrelated thoughts about one coding task: any three of them are not a loop."""

PARAPHRASES = (
    (
        "I should read the file utils.py to find the bug.",
        "Let me read utils.py to find the bug.",
        "I need to look at the file utils.py to locate the bug.",
        "Reading utils.py should show me where the bug is.",
    ),
    (
        "The test still fails, so I will run the tests again.",
        "Tests are still failing; I'll run the tests again.",
        "The test still fails. Running the tests once more.",
        "Since the test keeps failing, let me rerun the tests.",
    ),
    (
        "I will change the discount in pricing.py to fix the total.",
        "Let me fix the total by changing the discount in pricing.py.",
        "Changing the discount in pricing.py should fix the total.",
        "To fix the total I'll edit the discount in pricing.py.",
    ),
    (
        "Maybe the import in cart.py is wrong, I should check it.",
        "I should check whether the import in cart.py is wrong.",
        "Let me check the import in cart.py, it may be wrong.",
        "The import in cart.py might be wrong; checking it.",
    ),
    (
        "The patch did not apply, so I will try applying it again.",
        "Applying the patch failed; let me apply it again.",
        "The patch failed to apply. I'll retry applying it.",
        "Since the patch did not apply, I will apply it once more.",
    ),
)
"""Groups of one thought said four ways: a model repeating itself in other words."""

EXPLORING = (
    "Let me read {path}.",
    "Next I will open {path}.",
    "I'll look at {path} now.",
)
"""Templated thoughts of an agent reading one new file after another (progress, not a loop)."""

EDITING = (
    "I will edit {path} to fix the next failure.",
    "Let me change {path} for the failing test.",
    "The next failure points at {path}; editing it.",
)
TESTING = (
    "Now I run the tests again.",
    "Let me run the tests to check.",
    "Running the tests to see what is left.",
)
"""An agent's edit-then-test cycle: the same test call each time, but the results improve."""
