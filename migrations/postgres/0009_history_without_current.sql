-- `resource_versions` now holds only the versions a record has replaced; its current version
-- lives in `resources` alone (a new record's content is written once, not twice). Versions
-- stored before this change that are still current leave the history.
DELETE FROM resource_versions
 WHERE EXISTS (SELECT 1 FROM resources r
                WHERE r.resource_type = resource_versions.resource_type
                  AND r.id = resource_versions.id
                  AND r.version_id = resource_versions.version_id);
