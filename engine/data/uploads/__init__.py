"""User CSV uploads, in three steps with one module each:

- `inspect`: decode and sniff the bytes (UTF-8, UTF-16/32 with or without BOM, latin-1), parse the CSV strictly
  (duplicate, empty or colliding headers, NUL bytes, rows of another width are refused naming the line), profile
  each column, flag suspected identifiers and numbers too large to use (CsvInspection);
- `validate`: check the user's choices (UploadSpec) against the file and work out what would be written
  (UploadPlan and its catalogue entry); nothing is written;
- `register`: write the kept columns and the entry atomically under the uploads folder; replace, delete.
`limits` holds the thresholds they share.

Data minimisation: columns that look like direct identifiers (names, e-mail addresses, phone numbers, national
ids, row ids) or strong quasi-identifiers (postcodes, dates), by name or by how their values are written, are
flagged with the reason and dropped by default, and dropped columns are never written to disk. The kept
columns go to `<uploads_dir>/<name>/data.parquet` with a catalogue entry beside it; nothing is sent anywhere.

Bounds: an upload comes without a catalogue of public bounds, and nothing "public" is read from the rows. Bounds
and category lists the user types (age 18-100, a legal limit, a code list) are used as such. Those left empty are,
by the user's choice, either DP estimates (the default; `dp_preprocessing`: their epsilon is recorded on the entry
as `preprocessing_privacy` and composed into every run on the table) or the rows' min/max and values, recorded
as data-derived (`data_derived_columns` in the entry, `data_derived_bounds` in every run record), because they
leak information that epsilon does not cover. A text value outside the column's final list is not stored.
Every numeric column is nullable (a missing flag), so that nullability is not read from the rows either.
"""
