# 4. refusals: server CPU per refused connection with 10,000 users, the
# module (no vmess_fallback: it drains) next to v2ray: random bytes, the
# header of a user neither has, a replayed header.  vmess-client probe
# closes each connection once its bytes are sent, so neither server's
# drain or timeout sets the pace; a measurement ends when the server holds
# none of the connections any more.  Both servers log every refusal (nginx
# at info, v2ray's access log), and the logs of each measurement are
# counted: every probe refused for the expected reason, none proxied (a
# floor for v2ray, whose logger drops lines under load).
package VmessBench::Refusals;

use strict;
use warnings;

use Exporter 'import';
use Time::HiRes qw/time sleep/;

use VmessBench::Proc qw/run_cmd free_port cpu_seconds stop/;
use VmessBench::Servers qw/nginx_start nginx_stop v2ray_start v2ray_stop
                           target/;
use VmessBench::Util qw/progress note read_file write_file random_uuid/;

our @EXPORT_OK = qw/refusals/;

use constant USERS => 10000;
use constant PROBE_THREADS => 4;
use constant WARMUP => 20;
use constant WARMUP_CPU => 0.1;     # seconds: less is a few ticks

my @kinds = qw/random wrong_user replay/;

# what each server's log says for a refused probe of a kind, and for a
# connection it proxied
my %refused = (
    module => {random => qr/vmess: unknown user, drain/,
               wrong_user => qr/vmess: unknown user, drain/,
               replay => qr/vmess: replayed header, drain/},
    v2ray => {random => qr/ rejected .*invalid user > .*Not Found/,
              wrong_user => qr/ rejected .*invalid user > .*Not Found/,
              replay => qr/ rejected .*invalid user > replayed request/},
);
my %proxied = (module => qr/ proxy \S+ connected to /,
               v2ray => qr/ accepted /);

# {kinds => [...], users, kind => {module|v2ray => the median round, with
# min and max}}
sub refusals {
    my ($ctx) = @_;
    progress("refusals: $ctx->{hs_reps} round(s) of ~$ctx->{hs_seconds} s "
             . 'of server CPU per probe kind and server, ' . USERS
             . ' users');
    my @ids = ((map { random_uuid() } 2 .. USERS), $ctx->{uuid});
    my $file = "$ctx->{dir}/users-refusals";
    write_file($file, join('', map { "$_\n" } @ids));
    chmod 0644, $file;

    my ($echo_pid, $echo) = target($ctx, 'echo');
    my $mport = free_port();
    my $vport = free_port();
    my $ours = nginx_start($ctx, name => 'refusals-module', workers => 1,
                           conns => 8192, vmess => [[$mport, 16]],
                           users => $file, log_level => 'info');
    my $v2 = v2ray_start($ctx, 'refusals-v2ray', $vport, \@ids, 1);
    my %on = (
        module => {srv => $ours, port => $mport, echo => $echo,
                   log => "$ours->{dir}/error.log"},
        v2ray => {srv => $v2, port => $vport, echo => $echo,
                  log => $v2->{access}},
    );
    my $stranger = random_uuid();

    my %runs;
    for my $kind (@kinds) {
        for my $who (qw/module v2ray/) {
            my $p = $on{$who};
            my $w = probe_one($ctx, $who, $p, $kind, WARMUP, $stranger)
                or next;
            $w = probe_one($ctx, $who, $p, $kind, 10 * WARMUP, $stranger)
                or next
                if $w->{cpu} < WARMUP_CPU;
            my $n = int($ctx->{hs_seconds} / ($w->{us} / 1e6 || 1e-3));
            $n = 100 if $n < 100;
            $n = $ctx->{refusals_max} if $n > $ctx->{refusals_max};
            $p->{n}{$kind} = $n;
        }
    }
    for my $round (1 .. $ctx->{hs_reps}) {
        for my $kind (@kinds) {
            for my $who (qw/module v2ray/) {
                my $p = $on{$who};
                next unless $p->{n}{$kind};
                my $r = probe_one($ctx, $who, $p, $kind, $p->{n}{$kind},
                                  $stranger) or next;
                push @{$runs{$kind}{$who}}, $r;
            }
        }
        progress("refusals: round $round done");
    }

    nginx_stop($ours);
    v2ray_stop($v2);
    stop($echo_pid);

    my %res = (users => USERS, threads => PROBE_THREADS);
    for my $kind (keys %runs) {
        for my $who (keys %{$runs{$kind}}) {
            my @by = sort { $a->{us} <=> $b->{us} } @{$runs{$kind}{$who}};
            my $mid = $by[$#by / 2];
            $res{$kind}{$who} = {%$mid, rounds => scalar @by,
                                 min => $by[0]{us}, max => $by[-1]{us}};
        }
    }
    return \%res;
}

# $n probes of $kind at one server, until it holds none of them: {n, cpu
# (server seconds), us (per probe), per_s, client_us (the load
# generator's CPU per probe), logged (refusals logged)} or undef
sub probe_one {
    my ($ctx, $who, $p, $kind, $n, $stranger) = @_;
    my @args = probe_args($ctx, $p, $kind, $stranger) or return;
    my $log_from = -s $p->{log} // 0;
    my $before = cpu_seconds(@{$p->{srv}{pids}});
    my $start = time();
    my ($rc, $out) = run_cmd($ctx->{run_limit}, "$ctx->{bin}/vmess-client",
                             '-s', "127.0.0.1:$p->{port}", '-c',
                             PROBE_THREADS, '-r', $n, '--timeout', 5, @args,
                             'probe');
    my ($sent, $client) = $out =~ /^probe ok connections=(\d+) .*cpu=([\d.]+)/m;
    if ($rc ne '0' || !$sent) {
        note("refusals $who $kind: the probes failed ($rc): "
             . ($out =~ s/\n.*//sr));
        return;
    }
    my $held = drained($p->{port}, $ctx->{run_limit});
    my $wall = time() - $start;
    if ($held) {
        note("refusals $who $kind: $held of $n connections still open "
             . "after $ctx->{run_limit} s");
        return;
    }
    my ($logged, $through) = log_counts($p->{log}, $log_from,
                                        $refused{$who}{$kind},
                                        $proxied{$who}, $n);
    my $used = cpu_seconds(@{$p->{srv}{pids}}) - $before;
    # v2ray's logger drops a message when 16 wait (common/log/logger.go:
    # a buffered channel, select with default): its count is a floor
    if ($through || ($who eq 'module' ? $logged != $n : !$logged)) {
        note("refusals $who $kind: of $n probes $logged logged as refused, "
             . "$through proxied");
    }
    return {n => $n, cpu => $used, us => $used / $n * 1e6,
            per_s => $n / $wall, client_us => $client / $n * 1e6,
            logged => $logged, through => $through};
}

# what vmess-client probe sends for $kind: random bytes; a fresh header of
# a user the server does not have; the header of a session this server
# has just authenticated (its own user, the last of the list), again
sub probe_args {
    my ($ctx, $p, $kind, $stranger) = @_;
    return ('--probe', 'random', '-n', 64) if $kind eq 'random';
    return ('--probe', 'header', '-u', $stranger, '-t',
            "127.0.0.1:$p->{echo}") if $kind eq 'wrong_user';
    my $file = "$ctx->{dir}/replay-$p->{port}";
    unlink $file;
    my $size = -s $p->{log} // 0;
    # a fresh one each time: a header older than 120 s is clock skew, not
    # a replay; v2ray drains a few genuine sessions as replays (its filter
    # has false positives), which still leaves the header in its filter
    run_cmd($ctx->{run_limit}, "$ctx->{bin}/vmess-client", '-s',
            "127.0.0.1:$p->{port}", '-u', $ctx->{uuid}, '-t',
            "127.0.0.1:$p->{echo}", '-n', 64, '--replay-file', $file,
            'handshakes');
    # v2ray's logger lags: its line of this session is not the probes'
    my $end = time() + 2;
    sleep 0.05 while (-s $p->{log} // 0) == $size && time() < $end;
    return ('--send-header', $file) if -s $file;
    note("refusals: no header saved for the replay probes");
    return;
}

# waits until no connection to $port is established or waiting to be
# closed by the server (accept queue included): how many still are after
# $limit seconds
sub drained {
    my ($port, $limit) = @_;
    my $end = time() + $limit;
    my $local = sprintf ':%04X', $port;
    my $open;
    while (1) {
        $open = 0;
        for my $table ('/proc/net/tcp', '/proc/net/tcp6') {
            open my $fh, '<', $table or next;
            while (my $line = <$fh>) {
                my (undef, $l, undef, $st) = split ' ', $line;
                # 01 established, 03 SYN received, 08 close wait
                $open++ if $l =~ /\Q$local\E$/ && $st =~ /^0[138]$/;
            }
        }
        return 0 unless $open;
        return $open if time() > $end;
        sleep 0.05;
    }
}

# (lines matching $refused, lines matching $proxied) written to $log from
# byte $from on, once $n refusals are there or 5 s have passed (v2ray's
# logger writes from a goroutine of its own)
sub log_counts {
    my ($log, $from, $refused, $proxied, $n) = @_;
    my $end = time() + 5;
    my ($r, $t);
    while (1) {
        my $text = substr(read_file($log), $from);
        $r = () = $text =~ /$refused/g;
        $t = () = $text =~ /$proxied/g;
        return ($r, $t) if $r >= $n || time() > $end;
        sleep 0.1;
    }
}

1;
