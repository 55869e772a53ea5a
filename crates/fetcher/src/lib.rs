//! proxy-consume role: stream reads, consumers and the zone cache (layer 2).
