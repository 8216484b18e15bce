# The processes of a bench run: each one started here is registered, and
# every registered one is stopped when the script ends, however it ends.
# Their CPU time and RSS come from /proc.
package VmessBench::Proc;

use strict;
use warnings;
use feature 'state';

use Exporter 'import';
use File::Temp qw/tempdir/;
use IO::Socket::INET;
use POSIX qw/WNOHANG/;
use Time::HiRes qw/time sleep/;

use VmessBench::Util qw/read_file/;

our @EXPORT_OK = qw/run_dir spawn alive stop run_cmd free_port
                    wait_listening all_listening workers_of cpu_seconds
                    rss_kib tick placement pin/;

my %children;       # pid => what, everything started here
my $dir;            # the run's directory, for run_cmd's output
my $keep;
my $tick = POSIX::sysconf(POSIX::_SC_CLK_TCK());

# the run's directory under $TMPDIR, removed at the end unless $keep_it
sub run_dir {
    my ($keep_it) = @_;
    $keep = $keep_it;
    $dir = tempdir('vmess-bench-XXXXXX', TMPDIR => 1, CLEANUP => !$keep);
    chmod 0755, $dir;
    $SIG{INT} = $SIG{TERM} = sub { die "interrupted\n" };
    return $dir;
}

# END blocks run last compiled first: this one stops the processes before
# File::Temp's removes the directory
END {
    local $?;
    cleanup();
    print "kept $dir\n" if $keep && defined $dir;
}

sub spawn {
    my ($what, $out, @cmd) = @_;
    my $pid = fork() // die "fork: $!\n";
    if ($pid == 0) {
        # _exit: the END block (cleanup) belongs to the parent
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $out or POSIX::_exit(127);
        open STDERR, '>&', \*STDOUT or POSIX::_exit(127);
        { exec(@cmd) }
        POSIX::_exit(127);
    }
    $children{$pid} = $what;
    return $pid;
}

sub alive {
    my ($pid) = @_;
    return 0 unless $children{$pid};
    if (waitpid($pid, WNOHANG) == $pid) {
        delete $children{$pid};
        return 0;
    }
    return 1;
}

# TERM (QUIT for an nginx master), then KILL after a grace period
sub stop {
    my ($pid, $sig) = @_;
    return unless $pid && $children{$pid};
    kill $sig // 'TERM', $pid;
    my $end = time() + 5;
    while (time() < $end) {
        return unless alive($pid);
        sleep 0.02;
    }
    kill 'KILL', $pid;
    waitpid($pid, 0);
    delete $children{$pid};
}

sub cleanup {
    for my $pid (keys %children) {
        next unless $children{$pid};
        # an nginx master takes its workers with it on QUIT/TERM
        my @w = $children{$pid} =~ /^nginx/ ? workers_of($pid) : ();
        stop($pid, 'TERM');
        kill 'KILL', grep { -e "/proc/$_" } @w;
    }
}

# runs a command to its end or for at most $limit seconds: (exit status or
# 'timeout', output, wall seconds)
sub run_cmd {
    my ($limit, @cmd) = @_;
    my $out = "$dir/cmd.out";
    my $start = time();
    my $pid = spawn("cmd $cmd[0]", $out, @cmd);
    my $end = $start + $limit;
    my $rc;
    while (1) {
        my $r = waitpid($pid, WNOHANG);
        if ($r == $pid) {
            $rc = $? >> 8;
            delete $children{$pid};
            last;
        }
        if (time() > $end) {
            stop($pid, 'TERM');
            $rc = 'timeout';
            last;
        }
        sleep 0.01;
    }
    my $wall = time() - $start;
    return ($rc, read_file($out), $wall);
}

sub free_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1:0', Listen => 1,
                                  ReuseAddr => 1) or die "port: $!\n";
    return $s->sockport();
}

# listening on 127.0.0.1:port (from /proc/net/tcp, no probe connection)
sub listening {
    my ($port) = @_;
    my $want = sprintf '0100007F:%04X', $port;
    open my $fh, '<', '/proc/net/tcp' or return 0;
    while (my $line = <$fh>) {
        my @f = split ' ', $line;
        return 1 if @f > 3 && $f[1] eq $want && $f[3] eq '0A';
    }
    return 0;
}

sub all_listening {
    return !grep { !listening($_) } @_;
}

sub wait_listening {
    my ($pid, $timeout, @ports) = @_;
    my $end = time() + $timeout;
    while (time() < $end) {
        return 1 if all_listening(@ports);
        return 0 unless alive($pid);
        sleep 0.05;
    }
    return 0;
}

sub workers_of {
    my ($master) = @_;
    my @w;
    for my $stat (glob '/proc/[0-9]*/stat') {
        my $s = read_file($stat) or next;
        my ($pid, $ppid) = $s =~ /^(\d+) \(.*\) \S (\d+)/ or next;
        push @w, $pid if $ppid == $master;
    }
    return @w;
}

sub cpu_seconds {
    my $sum = 0;
    for my $pid (@_) {
        my $s = read_file("/proc/$pid/stat") or next;
        $s =~ s/^.*\) //;
        my @f = split / /, $s;
        $sum += $f[11] + $f[12];        # utime, stime
    }
    return $sum / $tick;
}

sub rss_kib {
    my $sum = 0;
    for my $pid (@_) {
        my ($kb) = read_file("/proc/$pid/status") =~ /^VmRSS:\s+(\d+)/m;
        $sum += $kb // 0;
    }
    return $sum;
}

sub tick {
    return $tick;
}

# CPU 0 for a server, the others for the load: with two CPUs or more and a
# taskset that works, else nothing is pinned
sub placement {
    state $p;
    return $p if $p;
    my $n = `nproc`;
    $p = {pinned => $n >= 2 && system('taskset -c 0 true') == 0,
          load_cpus => '1-' . ($n - 1), all_cpus => '0-' . ($n - 1)};
    return $p;
}

sub pin {
    my ($cpus, @pids) = @_;
    return unless placement()->{pinned};
    system("taskset -a -p -c $cpus $_ >/dev/null") for @pids;
}

1;
