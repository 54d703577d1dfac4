-- top_pct_per_domain: the best share of each domain by sort_key (e.g. IFD top 20% per domain).
-- reads:   scored(_ord, id, domain, sort_key, eligible)
-- params:  $pct      DOUBLE  share of each domain's scored eligible rows to keep, in (0, 1] (default 0.2)
-- returns: _ord, sel_rank
-- shard:   domain
-- note:    a domain of r rows keeps ceil(pct * r); sel_rank is the rank inside the domain; ties break on id
with pool as (
    select _ord, id, domain, sort_key
    from scored
    where eligible and sort_key is not null
),
ranked as (
    select
        _ord,
        row_number() over (partition by domain order by sort_key desc, id, _ord) as sel_rank,
        count(*) over (partition by domain) as domain_rows
    from pool
),
final as (
    select _ord, sel_rank from ranked where sel_rank <= ceil($pct * domain_rows)
)
select _ord, sel_rank from final order by _ord
