-- mix_available: eligible scored rows per domain, the pool that mix_plan divides.
-- reads:   scored(domain, sort_key, eligible)
-- params:  none
-- returns: domain, available
-- shard:   domain
-- note:    a shard holding whole domains counts them exactly, so on a cluster the shards' rows are simply
--          concatenated before mix_plan runs on the driver
select domain, count(*) as available
from scored
where eligible and sort_key is not null
group by domain
order by domain
