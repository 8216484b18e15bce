# 2. handshakes: new authenticated sessions per server CPU second, the
# module next to v2ray, with 1, 1,000 and 10,000 users, the client the last
# one of the list; at 10,000 also the module with 5,000 of them added
# through the HTTP API (the client among those).
package VmessBench::Handshakes;

use strict;
use warnings;

use Exporter 'import';
use IO::Socket::INET;

use VmessBench::Load qw/handshakes_cmd handshakes_run/;
use VmessBench::Proc qw/stop free_port cpu_seconds/;
use VmessBench::Servers qw/nginx_start nginx_stop v2ray_start v2ray_stop
                           target/;
use VmessBench::Util qw/progress note write_file random_uuid/;

# the users added through the API at 10,000 users
use constant API_USERS => 5000;

our @EXPORT_OK = qw/handshakes/;

# {users => {module|v2ray => the median round, with min and max}}, or
# undef if no round of either server was measured
sub handshakes {
    my ($ctx) = @_;
    progress("handshakes: $ctx->{hs_reps} round(s) of ~$ctx->{hs_seconds} "
             . "s per server");
    my %hs;
    for my $n (@{$ctx->{user_counts}}) {
        my $r = handshakes_users($ctx, $n);
        $hs{$n} = $r if %$r;
        progress("handshakes: $n users done");
    }
    return %hs ? \%hs : undef;
}

# both servers up at once, measured in turns; the median round of each
sub handshakes_users {
    my ($ctx, $n) = @_;
    my @ids = ((map { random_uuid() } 2 .. $n), $ctx->{uuid});
    my $file = "$ctx->{dir}/users-$n";
    write_file($file, join('', map { "$_\n" } @ids));
    chmod 0644, $file;

    my ($echo1_pid, $echo1) = target($ctx, 'echo');
    my ($echo2_pid, $echo2) = target($ctx, 'echo');
    my $mport = free_port();
    my $vport = free_port();
    my $ours = nginx_start($ctx, name => "hs-module-$n", workers => 1,
                           vmess => [[$mport, 16]], users => $file);
    my $v2 = v2ray_start($ctx, "hs-v2ray-$n", $vport, \@ids,
                         $ctx->{v2ray_access_log});
    my ($api, $aport) = $n > API_USERS ? api_server($ctx, $n, \@ids) : ();

    # scalar: a failed warm-up is an undef entry, not a shifted list
    my %prep = (
        module => scalar handshakes_prepare($ctx, $ours, $mport, $echo1),
        v2ray => scalar handshakes_prepare($ctx, $v2, $vport, $echo2),
        $api ? (api => scalar handshakes_prepare($ctx, $api, $aport, $echo1))
             : ());
    my %runs;
    for my $round (1 .. $ctx->{hs_reps}) {
        for my $who (qw/module v2ray api/) {
            next unless $prep{$who};
            my $r = handshakes_one($ctx, $prep{$who}) or next;
            push @{$runs{$who}}, $r;
        }
    }
    my %hs;
    for my $who (keys %runs) {
        my @by = sort { $a->{per_cpu} <=> $b->{per_cpu} } @{$runs{$who}};
        my $mid = $by[$#by / 2];
        $hs{$who} = {%$mid, rounds => scalar @by, min => $by[0]{per_cpu},
                     max => $by[-1]{per_cpu}};
    }

    nginx_stop($ours);
    nginx_stop($api) if $api;
    v2ray_stop($v2);
    stop($echo1_pid);
    stop($echo2_pid);
    return \%hs;
}

# the module with the first n - API_USERS users in its file and the rest
# (the client last) added through the API: (server, its vmess port)
sub api_server {
    my ($ctx, $n, $ids) = @_;
    my $d = "$ctx->{dir}/hs-api-users";
    mkdir $d;
    chmod 0777, $d;     # the workers rewrite the file
    my $file = "$d/users";
    write_file($file,
               join('', map { "$_\n" } @$ids[0 .. $n - API_USERS - 1]));
    chmod 0666, $file;
    my ($port, $aport) = (free_port(), free_port());
    my $srv = nginx_start($ctx, name => "hs-api-$n", workers => 1,
                          vmess => [[$port, 16]], users => $file,
                          api => $aport);
    my $added = api_add($aport, @$ids[$n - API_USERS .. $n - 1]);
    if ($added != API_USERS) {
        note("handshakes: $added of " . API_USERS . " users added through "
             . 'the API');
        nginx_stop($srv);
        return;
    }
    return ($srv, $port);
}

# POST users for each id, 500 on a keep-alive connection (nginx's
# keepalive_requests is 1000): how many got 201
sub api_add {
    my ($aport, @ids) = @_;
    my ($s, $ok) = (undef, 0);
    for my $i (0 .. $#ids) {
        $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$aport")
            or return $ok
            if $i % 500 == 0;
        my $body = qq({"id":"$ids[$i]"});
        syswrite $s, "POST /vmess/users HTTP/1.1\r\nHost: bench\r\n"
            . 'Content-Length: ' . length($body) . "\r\n\r\n$body";
        my $head = '';
        while ($head !~ /\r\n\r\n/) {
            sysread($s, my $buf, 1) or return $ok;
            $head .= $buf;
        }
        my ($len) = $head =~ /^Content-Length: (\d+)/mi;
        my $got = 0;
        while ($got < ($len // 0)) {
            my $k = sysread($s, my $buf, $len - $got) or return $ok;
            $got += $k;
        }
        $ok++ if $head =~ m{^HTTP/1\.1 201};
    }
    return $ok;
}


# warm-up, then a short run to size the measured ones to ~hs_seconds
sub handshakes_prepare {
    my ($ctx, $srv, $port, $echo) = @_;
    my @base = handshakes_cmd($ctx, $port, $echo);
    handshakes_run($ctx, $srv, 50, @base) or return;
    my ($ok, $failed, $wall) = handshakes_run($ctx, $srv, 200, @base)
        or return;
    my $n = int($ok / $wall * $ctx->{hs_seconds});
    $n = 300 if $n < 300;
    $n = $ctx->{hs_max} if $n > $ctx->{hs_max};
    return {srv => $srv, base => \@base, n => $n};
}

sub handshakes_one {
    my ($ctx, $p) = @_;
    my ($srv, $n) = @$p{qw/srv n/};
    my $before = cpu_seconds(@{$srv->{pids}});
    my ($ok, $failed, $wall) = handshakes_run($ctx, $srv, $n, @{$p->{base}})
        or return;
    my $used = cpu_seconds(@{$srv->{pids}}) - $before;
    return if $used <= 0;
    note("handshakes $srv->{name}: $failed of $n sessions had no answer "
         . "(left out of the count; their CPU is in)") if $failed;
    return {sessions => $ok, failed => $failed, cpu => $used,
            per_cpu => $ok / $used, per_s => $ok / $wall};
}

1;
