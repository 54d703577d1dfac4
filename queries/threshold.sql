-- threshold: every eligible row whose score lies in [min, max].
-- reads:   scored(_ord, score, eligible)
-- params:  $min      DOUBLE  lowest score kept (required)
--          $max      DOUBLE  highest score kept (default inf)
-- returns: _ord
-- shard:   row
-- note:    compares the raw value of the --by column (`score`), whatever the sort direction
with final as (
    select _ord
    from scored
    where eligible and score >= $min and score <= $max
)
select _ord from final order by _ord
