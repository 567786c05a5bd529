"""User CSV uploads, in three steps with one module each:

- `inspect`: decode and sniff the bytes, parse the CSV, profile each column and flag suspected identifiers
  (CsvInspection);
- `validate`: check the user's choices (UploadSpec) against the file and work out what would be written
  (UploadPlan and its catalogue entry); nothing is written;
- `register`: write the kept columns and the entry atomically under the uploads folder; replace, delete.
`limits` holds the thresholds they share.

Data minimisation: columns that look like direct identifiers (names, e-mail addresses, phone numbers, national
ids, row ids) are flagged and dropped by default, and dropped columns are never written to disk. The kept
columns go to `<uploads_dir>/<name>/data.parquet` with a catalogue entry beside it; nothing is sent anywhere.

Bounds: an upload comes without a catalogue of public bounds, and nothing "public" is read from the rows. Bounds
and category lists the user types (age 18-100, a legal limit, a code list) are used as such. Those left empty are,
by the user's choice, either DP estimates (the default; `dp_preprocessing`: their epsilon is recorded on the entry
as `preprocessing_privacy` and composed into every run on the table) or the rows' min/max and values, recorded
as data-derived (`data_derived_columns` in the entry, `data_derived_bounds` in every run record), because they
leak information that epsilon does not cover. A text value outside the column's final list is not stored.
Every numeric column is nullable (a missing flag), so that nullability is not read from the rows either.
"""
