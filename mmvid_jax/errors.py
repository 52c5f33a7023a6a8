"""User-facing errors: one clear line that names the cause and the fix."""


class UserError(Exception):
  """A mistake the user can fix (bad config value, missing file, wrong input).

  `main` prints these as one line and exits with status 2, never as a traceback.
  """


class ConfigError(UserError):
  """A config value is invalid. The message names the key and how to fix it."""

  def __init__(self, key: str, problem: str, fix: str):
    self.key = key
    super().__init__(f"config.{key}: {problem}. Fix: {fix}.")
