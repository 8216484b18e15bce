# Small helpers of bench/run: progress lines, the notes of a run (failures
# and caveats, which the report lists at its end), files, numbers.
package VmessBench::Util;

use strict;
use warnings;

use Exporter 'import';
use Time::HiRes qw/time/;

our @EXPORT_OK = qw/progress elapsed note notes read_file write_file median
                    size loadavg random_uuid/;

my $started = time();
my @notes;

sub progress {
    my ($msg) = @_;
    printf "[%4.0fs] %s\n", elapsed(), $msg;
    STDOUT->flush();
}

sub elapsed {
    return time() - $started;
}

# one line each, however many the message had
sub note {
    my ($msg) = @_;
    $msg =~ s/\s+$//;
    $msg =~ s/\n/ \/ /g;
    push @notes, $msg;
    progress("note: $msg");
}

sub notes {
    return @notes;
}

sub read_file {
    my ($name) = @_;
    open my $fh, '<', $name or return '';
    local $/;
    return <$fh> // '';
}

sub write_file {
    my ($name, $content) = @_;
    open my $fh, '>', $name or die "$name: $!\n";
    print $fh $content;
    close $fh;
}

sub median {
    my @a = sort { $a <=> $b } @_;
    return undef unless @a;
    return @a % 2 ? $a[$#a / 2] : ($a[@a / 2 - 1] + $a[@a / 2]) / 2;
}

# bytes of "64m", "1g", ...
sub size {
    my ($s) = @_;
    my ($n, $u) = $s =~ /^(\d+)([kmg]?)$/i or die "bad size $s\n";
    return $n * {'' => 1, k => 1 << 10, m => 1 << 20, g => 1 << 30}->{lc $u};
}

sub loadavg {
    my @l = split ' ', read_file('/proc/loadavg');
    return "@l[0 .. 2]";
}

sub random_uuid {
    my @b = map { int rand 256 } 1 .. 16;
    $b[6] = ($b[6] & 0x0f) | 0x40;
    $b[8] = ($b[8] & 0x3f) | 0x80;
    my $h = join '', map { sprintf '%02x', $_ } @b;
    return join '-', substr($h, 0, 8), substr($h, 8, 4), substr($h, 12, 4),
        substr($h, 16, 4), substr($h, 20);
}

1;
