-- The factors the user proved at the sign-in a session or refresh family descends from
-- (bits of portcullis::assurance::Factors; the access tokens' `amr`), kept through rotations.
-- Rows from before record none, which reads as a single-factor sign-in.
ALTER TABLE portcullis_tokens ADD COLUMN amr INTEGER NOT NULL DEFAULT 0;
