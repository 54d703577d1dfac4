-- quality_tiers: nested top-tier1/tier2/tier3 subsets by sort_key (top 10K inside top 100K inside top 1M).
-- reads:   scored(_ord, id, sort_key, eligible)
-- params:  $tier1    BIGINT  rows in the first tier (default 10000)
--          $tier2    BIGINT  rows in the first two tiers (default 100000)
--          $tier3    BIGINT  rows in all three tiers (default 1000000)
-- returns: _ord, sel_rank, sel_tier
-- shard:   top
-- note:    sel_tier is the smallest tier holding the row, so tier k's subset is `sel_tier <= k`
with ranked as (
    select _ord, row_number() over (order by sort_key desc, id, _ord) as sel_rank
    from scored
    where eligible and sort_key is not null
),
final as (
    select
        _ord,
        sel_rank,
        case when sel_rank <= $tier1 then 1 when sel_rank <= greatest($tier1, $tier2) then 2 else 3 end as sel_tier
    from ranked
    where sel_rank <= greatest($tier1, $tier2, $tier3)
)
select _ord, sel_rank, sel_tier from final order by sel_rank
