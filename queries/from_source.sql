-- from_source: every eligible row ingested from one source (`--source NAME`, else the file's stem).
-- reads:   scored(_ord, source, eligible)
-- params:  $source   VARCHAR the source name (required)
-- returns: _ord
-- shard:   row
-- note:    chain it before a ranking query to rank within one source: --query from_source --query top_n
with final as (
    select _ord
    from scored
    where eligible and source = $source
)
select _ord from final order by _ord
