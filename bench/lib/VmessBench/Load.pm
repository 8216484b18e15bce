# The loads of a bench run: objs/vmess-client (copied to $ctx->{bin})
# moving bytes, opening sessions or holding them idle, and what its output
# says.  $ctx: {dir, bin, uuid, bulk_bytes, run_limit}.
package VmessBench::Load;

use strict;
use warnings;

use Exporter 'import';
use Time::HiRes qw/time sleep/;

use VmessBench::Proc qw/spawn alive stop run_cmd cpu_seconds placement/;
use VmessBench::Util qw/note read_file/;

our @EXPORT_OK = qw/transfer_cmd bulk_one handshakes_cmd handshakes_run
                    hold_cmd hold_warmup hold_open/;

my $GiB = 1 << 30;

# a VMess session as user $ctx->{uuid} to 127.0.0.1:$target
sub session_args {
    my ($ctx, $target, $sec) = @_;
    return ('-u', $ctx->{uuid}, '-t', "127.0.0.1:$target",
            defined $sec ? ('-S', $sec) : ());
}

# one connection moving $ctx->{bulk_bytes} in direction $dirn through the
# server on $port: VMess to $target with cipher $sec, or plain TCP if
# $target is undef
sub transfer_cmd {
    my ($ctx, $port, $target, $sec, $dirn) = @_;
    return ("$ctx->{bin}/vmess-client", '-s', "127.0.0.1:$port",
            defined $target ? session_args($ctx, $target, $sec) : '--plain',
            '-n', $ctx->{bulk_bytes}, $dirn);
}

# one transfer: CPU-s/GiB of the server and the client's MiB/s, or undef;
# $chunk: VMess plaintext bytes per chunk (vmess-client's 16 KiB if undef)
sub bulk_one {
    my ($ctx, $srv, $kind, $port, $target, $sec, $dirn, $conns, $chunk) = @_;
    my $per = int($ctx->{bulk_bytes} / $conns);
    my $total = $per * $conns;
    my $place = placement();
    my @cmd = ("$ctx->{bin}/vmess-client", '-s', "127.0.0.1:$port",
               '-n', $per, '-c', $conns, '-r', $conns, '--timeout', 20,
               $kind eq 'vmess' ? session_args($ctx, $target, $sec)
                                : '--plain',
               $kind eq 'relay' && $dirn eq 'download' ? '--unchecked' : (),
               defined $chunk ? ('--chunk', $chunk) : (),
               $dirn);
    unshift @cmd, 'taskset', '-c', $place->{load_cpus}
        if $conns == 1 && $place->{pinned};
    my $before = cpu_seconds(@{$srv->{pids}});
    my ($rc, $out, $wall) = run_cmd($ctx->{run_limit}, @cmd);
    my $used = cpu_seconds(@{$srv->{pids}}) - $before;
    my ($bytes, $secs) = $out =~ /^$dirn ok .*?bytes=(\d+) seconds=([\d.]+)/m;
    if ($rc ne '0' || !defined $bytes || $bytes != $total) {
        $out =~ s/\s+$//;
        note("bulk $srv->{name} $sec $dirn x$conns"
             . (defined $chunk ? " chunk $chunk" : '') . " failed ($rc): "
             . (split /\n/, $out)[0] // '');
        return undef;
    }
    return {cpu_gib => $used / ($total / $GiB),
            mibs => $total / $secs / 1048576, cpu => $used};
}

# new sessions, 4 at a time, each echoing 64 bytes through $port to $echo;
# handshakes_run adds how many
sub handshakes_cmd {
    my ($ctx, $port, $echo) = @_;
    return ("$ctx->{bin}/vmess-client", '-s', "127.0.0.1:$port",
            session_args($ctx, $echo), '-c', 4, '-n', 64, '--timeout', 3);
}

# a handshakes run: (answered sessions, failed ones, wall seconds) or
# undef.  Sessions left without an answer are tolerated up to 1% (v2ray
# drains some genuine ones as "replayed request"); they are counted.
sub handshakes_run {
    my ($ctx, $srv, $n, @base) = @_;
    my ($rc, $out, $wall) = run_cmd($ctx->{run_limit}, @base, '-r', $n,
                                    'handshakes');
    return ($1, 0, $wall)
        if $rc eq '0' && $out =~ /^handshakes ok sessions=(\d+)/m;
    my $failed = qr/^handshakes FAIL sessions=(\d+) failed=(\d+): no resp/m;
    if ($out =~ $failed && $2 <= $1 / 100 + 1) {
        return ($1 - $2, $2, $wall);
    }
    note("handshakes $srv->{name} failed ($rc): " . ($out =~ s/\n.*//sr));
    return;
}

# idle sessions through $port: plain TCP if $sec is 'plain', else VMess
# with $sec (aes-128-gcm if undef) to $echo; each echoes 16 bytes, as a
# v2ray client's first request chunk
sub hold_cmd {
    my ($ctx, $port, $echo, $sec) = @_;
    return ("$ctx->{bin}/vmess-client", 'hold', '-s', "127.0.0.1:$port",
            '-n', 16, ($sec // '') eq 'plain' ? '--plain'
            : session_args($ctx, $echo, $sec // 'aes-128-gcm'));
}

# 20 sessions opened and closed: true if they all were
sub hold_warmup {
    my ($ctx, $srv, @hold) = @_;
    my ($rc, $out) = run_cmd($ctx->{run_limit}, @hold, '-c', 20,
                             '--hold', 0);
    return 1 if $rc eq '0' && $out =~ /^hold held=/m;
    note("memory $srv->{name} warm-up failed: $out");
    return 0;
}

# $n sessions opened and kept idle: (pid of the client, sessions held) or
# () when too few were held
sub hold_open {
    my ($ctx, $srv, $n, @hold) = @_;
    my $limit = $ctx->{run_limit};
    my $log = "$ctx->{dir}/hold-$srv->{name}.log";
    my $start = time();
    my $pid = spawn('hold', $log, @hold, '-c', $n, '--in-flight', 128,
                    '--timeout', $limit, '--answer', 5, '--hold', 60);
    my $held;
    while (time() < $start + $limit + 5) {
        ($held) = read_file($log)
            =~ /^hold held=(\d+) sessions=\d+ unanswered=\d+/m;
        last if $held || !alive($pid);
        sleep 0.05;
    }
    # a few sessions drained by v2ray are tolerated (vmess-client --answer)
    if (!$held || $held < $n * 0.99) {
        note("memory $srv->{name} n=$n: " . (read_file($log) || 'no answer'));
        stop($pid);
        return;
    }
    note("memory $srv->{name}: " . (read_file($log) =~ s/\n.*//sr)
         . ' (growth divided by the sessions held)') if $held != $n;
    return ($pid, $held);
}

1;
