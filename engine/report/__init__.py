"""The HTML report: score distributions, retention funnel, mix, duplicates and lengths on one offline page."""
