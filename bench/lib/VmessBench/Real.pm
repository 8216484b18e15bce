# 0. real: the real v2ray 4.34 client as the load.  One v2ray process on
# the load CPUs has a dokodemo-door inbound per server and direction,
# routed to a vmess outbound (aes-128-gcm, AEAD, options as v2ray sends
# them) to the module or to v2ray as a server, or to a freedom outbound to
# plain nginx; vmess-client --plain moves the bytes through it to the same
# sink and source.  Only the server's CPU is counted, as in bulk.
package VmessBench::Real;

use strict;
use warnings;

use Exporter 'import';

use VmessBench::Bulk qw/transfer_medians/;
use VmessBench::Load qw/bulk_one/;
use VmessBench::Proc qw/spawn stop free_port placement pin
                        wait_listening/;
use VmessBench::Servers qw/nginx_start nginx_stop v2ray_start v2ray_stop
                           transfer_targets/;
use VmessBench::Util qw/progress read_file write_file/;

our @EXPORT_OK = qw/real v2ray_client/;

# {"server|dir" => {cpu, mibs, n, all}} for server module<buf>,
# plain<buf> (buf in $ctx->{real_bufs}) and v2ray, one connection, servers
# on CPU 0; undef if no transfer succeeded
sub real {
    my ($ctx) = @_;
    my $reps = $ctx->{reps};
    progress("real: the v2ray client as the load, $reps x "
             . ($ctx->{bulk_bytes} >> 20) . " MiB per transfer");
    my ($target, @target_pids) = transfer_targets($ctx);
    my $place = placement();
    pin($place->{load_cpus}, @target_pids);
    my %runs;
    for my $rep (1 .. $reps) {
        real_round($ctx, \%runs, $rep, $target);
        progress("real: round $rep of $reps done");
    }
    stop($_) for @target_pids;
    return transfer_medians(\%runs);
}

# every server up at once (idle ones cost nothing), measured in turns, so
# that the ratios come from interleaved transfers
sub real_round {
    my ($ctx, $runs, $rep, $target) = @_;
    my @bufs = @{$ctx->{real_bufs}};
    my %vport = map { $_ => free_port() } @bufs;
    my $ours = nginx_start($ctx, name => "real-module-$rep", workers => 1,
                           vmess => [map { [$vport{$_}, $_] } @bufs]);
    my (%pport, @plain);
    for my $buf (@bufs) {
        for my $dirn (qw/upload download/) {
            $pport{"$buf|$dirn"} = free_port();
            push @plain, [$pport{"$buf|$dirn"}, $buf, $target->{$dirn}];
        }
    }
    my $plain = nginx_start($ctx, name => "real-plain-$rep", workers => 1,
                            plain => \@plain);
    my $v2port = free_port();
    my $v2 = v2ray_start($ctx, "real-v2ray-$rep", $v2port, [$ctx->{uuid}]);

    # [key, server, vmess server port or undef, port for each direction]
    my @cells = ((map { ["module$_", $ours, $vport{$_}] } @bufs),
                 ['v2ray', $v2, $v2port],
                 (map { my $b = $_;
                        ["plain$b", $plain, undef,
                         {map { $_ => $pport{"$b|$_"} } qw/upload download/}]
                      } @bufs));
    my $client = v2ray_client($ctx, "real-client-$rep", $target, \@cells);
    pin('0', @{$ours->{pids}}, @{$plain->{pids}}, $v2->{pid});
    pin(placement()->{load_cpus}, $client->{pid});
    for my $dirn (qw/upload download/) {
        for my $cell (@cells) {
            my ($key, $srv) = @$cell;
            my $r = bulk_one($ctx, $srv, 'plain', $client->{port}{$key}{$dirn},
                             undef, 'aes-128-gcm', $dirn, 1);
            next unless $r;
            push @{$runs->{"$key|$dirn"}{cpu}}, $r->{cpu_gib};
            push @{$runs->{"$key|$dirn"}{mibs}}, $r->{mibs};
        }
    }
    stop($client->{pid});
    nginx_stop($ours);
    nginx_stop($plain);
    v2ray_stop($v2);
}

# v2ray as the client: per cell and direction a dokodemo-door inbound to
# the sink or the source, routed to a vmess outbound to the cell's server
# or, for plain nginx, a freedom outbound straight to its port.  Returns
# {pid, port => {key => {dir => inbound port}}}.
sub v2ray_client {
    my ($ctx, $name, $target, $cells) = @_;
    my (@in, @out, @rules, %port);
    for my $cell (@$cells) {
        my ($key, undef, $vmess, $plain_port) = @$cell;
        push @out, defined $vmess
            ? qq({"tag": "to-$key", "protocol": "vmess", "settings": )
              . qq({"vnext": [{"address": "127.0.0.1", "port": $vmess, )
              . qq("users": [{"id": "$ctx->{uuid}", "alterId": 0, )
              . qq("security": "aes-128-gcm"}]}]}})
            : qq({"tag": "to-$key", "protocol": "freedom", "settings": {}});
        for my $dirn (qw/upload download/) {
            my $p = $port{$key}{$dirn} = free_port();
            my $dest = defined $vmess ? $target->{$dirn} : $plain_port->{$dirn};
            push @in, qq({"tag": "in-$key-$dirn", "listen": "127.0.0.1", )
                . qq("port": $p, "protocol": "dokodemo-door", "settings": )
                . qq({"address": "127.0.0.1", "port": $dest, )
                . qq("network": "tcp"}});
            push @rules, qq({"type": "field", "inboundTag": )
                . qq(["in-$key-$dirn"], "outboundTag": "to-$key"});
        }
    }
    my $json = "$ctx->{dir}/$name.json";
    write_file($json, qq({\n  "log": {"loglevel": "none", "access": "none"},\n)
        . qq(  "inbounds": [\n    ) . join(",\n    ", @in) . "\n  ],\n"
        . qq(  "outbounds": [\n    ) . join(",\n    ", @out) . "\n  ],\n"
        . qq(  "routing": {"rules": [\n    ) . join(",\n    ", @rules)
        . "\n  ]}\n}\n");
    my $log = "$ctx->{dir}/$name.log";
    my $pid = spawn("v2ray $name", $log, 'v2ray', '-config', $json);
    wait_listening($pid, 60, map { values %$_ } values %port)
        or die "v2ray $name did not start:\n" . read_file($log);
    return {pid => $pid, port => \%port};
}

1;
