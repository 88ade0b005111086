#!/usr/bin/perl
# make_mmdb.pl OUTDIR — write the GeoDB test databases for mailtrail.
#
#   city-maxmind.mmdb     GeoIP2-City layout (nested maps, double lat/lon)
#   city-maxmind-v2.mmdb  same, but 203.0.113.0/24 is Sydney, not Tokyo
#                         (for the "database swapped under load" test)
#   city-dbip-v4.mmdb     DB-IP npm layout, database_type "city ipv4",
#                         IPv4-only tree, flat map with float lat/lon
#   city-dbip-v6.mmdb     same layout, database_type "city ipv6", IPv6 data only
#   asn.mmdb              GeoLite2-ASN layout
#
# Every file is then checked with mmdblookup(1) against tests/geo/places.json
# (next to this script). Prints nothing on success; dies on any mismatch.
#
# Needs libmaxmind-db-writer-perl, libjson-pp-perl (core) and mmdb-bin.
#
# Writer quirks handled here:
#  - remove_reserved_networks defaults to TRUE and then *silently* drops every
#    insert inside documentation/private space (192.0.2.0/24, 2001:db8::/32 …),
#    leaving an empty database; it must be set to 0.
#  - with merge_strategy "none" (the default) the last insert wins where
#    networks overlap, so the /32 must be inserted before the more specific /48.
#  - alias_ipv6_to_ipv4 is only allowed on ip_version 6 trees; with it on,
#    IPv4 networks are inserted in dotted form (stored at ::/96) and
#    ::ffff:0:0/96, 2001::/32, 2002::/16 point at them.
#  - every map key, at every depth, needs a type from map_key_type_callback
#    (an unknown key dies at write time, not at insert time).
#  - description is required, even if empty-ish.
use strict;
use warnings;
use utf8;
use File::Basename qw(dirname);
use File::Spec;
use JSON::PP;
use MaxMind::DB::Writer::Tree;

my $out = shift @ARGV or die "usage: $0 OUTDIR\n";
-d $out or mkdir $out or die "$0: cannot create $out: $!\n";

# network => [city, cc, country name, lat, lon, time zone, geoname id, postcode, state1]
my @places_v4 = (
    [ '192.0.2.0/24',    'Paris',  'FR', 'France',         48.8566, 2.3522,   'Europe/Paris',  2988507, '75001',  'Ile-de-France' ],
    [ '198.51.100.0/24', 'London', 'GB', 'United Kingdom', 51.5074, -0.1278,  'Europe/London', 2643743, 'EC1A',   'England' ],
    [ '203.0.113.0/24',  'Tokyo',  'JP', 'Japan',          35.6762, 139.6503, 'Asia/Tokyo',    1850147, '100-0001', 'Tokyo' ],
);
# order matters: the /32 first, then the more specific /48 overwrites its part
my @places_v6 = (
    [ '2001:db8::/32',   'Berlin',   'DE', 'Germany',       52.52,   13.405,  'Europe/Berlin',    2950159, '10117', 'Land Berlin' ],
    [ '2001:db8:1::/48', 'New York', 'US', 'United States', 40.7128, -74.006, 'America/New_York', 5128581, '10001', 'New York' ],
    # A hostile place name: what a map or a table must escape.
    [ '2001:db8:3::/48', q{S<o> & "Paulo's"}, 'BR', 'Brazil', -23.5505, -46.6333, 'America/Sao_Paulo', 3448439, '01000', 'SP' ],
);
my %sydney = ( '203.0.113.0/24' =>
    [ '203.0.113.0/24', 'Sydney', 'AU', 'Australia', -33.8688, 151.2093, 'Australia/Sydney', 2147714, '2000', 'New South Wales' ] );

my @asn = (
    [ '192.0.2.0/24',    64496, 'Example Transit' ],
    [ '198.51.100.0/24', 64497, 'Example Hosting' ],
    [ '2001:db8::/32',   64498, 'Example v6' ],
);

my %geoip2_types = (
    city             => 'map',
    country          => 'map',
    registered_country => 'map',
    location         => 'map',
    postal           => 'map',
    names            => 'map',
    en               => 'utf8_string',
    geoname_id       => 'uint32',
    iso_code         => 'utf8_string',
    latitude         => 'double',
    longitude        => 'double',
    accuracy_radius  => 'uint16',
    time_zone        => 'utf8_string',
    code             => 'utf8_string',
);
my %dbip_types = (
    city         => 'utf8_string',
    country_code => 'utf8_string',
    latitude     => 'float',
    longitude    => 'float',
    postcode     => 'utf8_string',
    state1       => 'utf8_string',
    state2       => 'utf8_string',
    timezone     => 'utf8_string',
);
my %asn_types = (
    autonomous_system_number       => 'uint32',
    autonomous_system_organization => 'utf8_string',
);

sub tree {
    my (%a) = @_;
    my $types = delete $a{types};
    return MaxMind::DB::Writer::Tree->new(
        record_size              => 24,
        languages                => ['en'],
        description              => { en => "mailtrail test database ($a{database_type})" },
        remove_reserved_networks => 0,
        map_key_type_callback    => sub {
            my $t = $types->{ $_[0] };
            defined $t or die "make_mmdb: no type for key '$_[0]'\n";
            return $t;
        },
        %a,
    );
}

sub write_db {
    my ( $tree, $name ) = @_;
    my $path = File::Spec->catfile( $out, $name );
    my $tmp  = "$path.tmp.$$";
    open my $fh, '>:raw', $tmp or die "$0: $tmp: $!\n";
    $tree->write_tree($fh);
    close $fh or die "$0: $tmp: $!\n";
    rename $tmp, $path or die "$0: rename $tmp: $!\n";
}

sub geoip2_record {
    my ($p) = @_;
    my ( undef, $city, $cc, $cname, $lat, $lon, $tz, $gid, $postcode ) = @$p;
    my $country = { iso_code => $cc, names => { en => $cname } };
    return {
        city               => { geoname_id => $gid, names => { en => $city } },
        country            => $country,
        registered_country => $country,
        location           => {
            latitude        => $lat,
            longitude       => $lon,
            accuracy_radius => 20,
            time_zone       => $tz,
        },
        postal => { code => $postcode },
    };
}

sub dbip_record {
    my ($p) = @_;
    my ( undef, $city, $cc, undef, $lat, $lon, $tz, undef, $postcode, $state1 ) = @$p;
    return {
        city         => $city,
        country_code => $cc,
        latitude     => $lat,
        longitude    => $lon,
        postcode     => $postcode,
        state1       => $state1,
        state2       => '',
        timezone     => $tz,
    };
}

# 1 + 4: GeoIP2-City, and the v2 variant
for my $variant ( [ 'city-maxmind.mmdb', {} ], [ 'city-maxmind-v2.mmdb', \%sydney ] ) {
    my ( $name, $over ) = @$variant;
    my $t = tree(
        ip_version         => 6,
        record_size        => 28,
        database_type      => 'GeoIP2-City',
        alias_ipv6_to_ipv4 => 1,
        types              => \%geoip2_types,
    );
    for my $p ( @places_v4, @places_v6 ) {
        my $q = $over->{ $p->[0] } // $p;
        $t->insert_network( $p->[0], geoip2_record($q) );
    }
    write_db( $t, $name );
}

# 2: DB-IP npm flat layout, one IPv4 and one IPv6 file
{
    my $t = tree( ip_version => 4, database_type => 'city ipv4', types => \%dbip_types );
    $t->insert_network( $_->[0], dbip_record($_) ) for @places_v4;
    write_db( $t, 'city-dbip-v4.mmdb' );

    $t = tree( ip_version => 6, database_type => 'city ipv6', types => \%dbip_types );
    $t->insert_network( $_->[0], dbip_record($_) ) for @places_v6;
    write_db( $t, 'city-dbip-v6.mmdb' );
}

# 3: GeoLite2-ASN
{
    my $t = tree(
        ip_version         => 6,
        database_type      => 'GeoLite2-ASN',
        alias_ipv6_to_ipv4 => 1,
        types              => \%asn_types,
    );
    for my $a (@asn) {
        $t->insert_network( $a->[0],
            { autonomous_system_number => $a->[1], autonomous_system_organization => $a->[2] } );
    }
    write_db( $t, 'asn.mmdb' );
}

# ---------------------------------------------------------------- verify ----
my $jf = File::Spec->catfile( dirname( File::Spec->rel2abs($0) ), 'places.json' );
open my $jh, '<:raw', $jf or die "$0: $jf: $!\n";
my $exp = JSON::PP->new->decode( do { local $/; <$jh> } );
close $jh;
my $tol = $exp->{float_tolerance};
my @fail;

# mmdblookup --file F --ip IP [path...]: returns (status, value) where value is
# the scalar printed for a leaf path, or undef on a miss; with --verbose
# instead of a path, the whole output (metadata).
sub lookup {
    my ( $file, $ip, @path ) = @_;
    my $pid = open my $ph, '-|';
    defined $pid or die "$0: fork: $!\n";
    if ( !$pid ) {
        open STDERR, '>&', \*STDOUT;
        exec 'mmdblookup', '--file', $file, '--ip', $ip, @path or die "exec mmdblookup: $!\n";
    }
    my $txt = do { local $/; <$ph> };
    close $ph;
    my $rc = $? >> 8;
    return ( 'ok', $txt ) if grep { $_ eq '--verbose' } @path;
    return ( 'miss', undef ) if $txt =~ /Could not find an entry|IPv6 address in an IPv4-only/;
    return ( 'nopath', undef ) if $txt =~ /The lookup path does not match/;
    return ( 'err: ' . $txt, undef ) if $rc;
    if ( $txt =~ /^\s*"((?:[^"\\]|\\.)*)"\s*<utf8_string>/m ) { return ( 'ok', $1 ) }
    if ( $txt =~ /^\s*(-?[0-9.]+)\s*<(\w+)>/m ) { return ( 'ok', $1, $2 ) }
    return ( 'ok', $txt );
}

sub check {
    my ( $file, $ip, $want, $kind, $path ) = @_;
    my ( $st, $got, $type ) = lookup( $file, $ip, @$path );
    my $what = "$file $ip @$path";
    if ( !defined $want ) {
        push @fail, "$what: expected miss, got $st " . ( $got // '' ) if $st eq 'ok';
        return;
    }
    if ( $st ne 'ok' ) { push @fail, "$what: $st (want $want)"; return }
    if ( $kind eq 'num' ) {
        push @fail, "$what: got $got want $want" if abs( $got - $want ) > $tol;
        push @fail, "$what: type $type want $_[5]" if $_[5] && $type ne $_[5];
    }
    else {
        push @fail, "$what: got '$got' want '$want'" if $got ne $want;
    }
}

my @all_ips = ( sort( keys %{ $exp->{ips} } ), @{ $exp->{misses} } );
for my $file ( sort keys %{ $exp->{files} } ) {
    my $meta  = $exp->{files}{$file};
    my $path  = File::Spec->catfile( $out, $file );
    my %cover = map { $_ => 1 } @{ $exp->{coverage}{$file} };

    # metadata
    my ( undef, $md ) = lookup( $path, '127.0.0.1', '--verbose' );
    push @fail, "$file: database_type not '$meta->{database_type}'"
        unless $md =~ /Type:\s+\Q$meta->{database_type}\E\s*$/m;
    push @fail, "$file: ip_version not $meta->{ip_version}"
        unless $md =~ /IP version:\s+IPv$meta->{ip_version}\s*$/m;
    push @fail, "$file: record_size not $meta->{record_size}"
        unless $md =~ /Record size:\s+$meta->{record_size} bits\s*$/m;

    for my $ip (@all_ips) {
        my $e = $cover{$ip} ? { %{ $exp->{ips}{$ip} } } : undef;
        if ( $e && $exp->{overrides}{$file}{$ip} ) { %$e = ( %$e, %{ $exp->{overrides}{$file}{$ip} } ) }
        my $l = $meta->{layout};
        if ( $l eq 'geoip2' ) {
            check( $path, $ip, $e && $e->{lat},  'num', [qw(location latitude)],  'double' );
            check( $path, $ip, $e && $e->{lon},  'num', [qw(location longitude)], 'double' );
            check( $path, $ip, $e && $e->{cc},   'str', [qw(country iso_code)] );
            check( $path, $ip, $e && $e->{city}, 'str', [qw(city names en)] );
        }
        elsif ( $l eq 'flat' ) {
            check( $path, $ip, $e && $e->{lat},  'num', ['latitude'],  'float' );
            check( $path, $ip, $e && $e->{lon},  'num', ['longitude'], 'float' );
            check( $path, $ip, $e && $e->{cc},   'str', ['country_code'] );
            check( $path, $ip, $e && $e->{city}, 'str', ['city'] );
        }
        else {
            check( $path, $ip, $e && $e->{asn},     'num', ['autonomous_system_number'], 'uint32' );
            check( $path, $ip, $e && $e->{asn_org}, 'str', ['autonomous_system_organization'] );
        }
    }
}
die map( "make_mmdb: $_\n", @fail ) if @fail;
exit 0;
