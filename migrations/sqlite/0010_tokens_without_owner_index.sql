-- A record's replaced search tokens are deleted by their own values, which its replaced content
-- gives (the token index finds them), so the index by owner goes: it cost every new token a
-- write at a scattered key. A search that checks tokens per record does so only when each
-- value asked for has its code, and so uses the token index too.
DROP INDEX resource_tokens_by_owner;
