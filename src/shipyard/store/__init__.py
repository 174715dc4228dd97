"""Foundation: the metadata database, the content-addressed blob store and the audit chain."""

# Longest key (param, metric, tag, run or experiment name) any table accepts.
KEY_LENGTH = 250
