/* What the emulated virtio-gpu device saw: a count per event (ioctl name, MMAP, OPEN, ...)
 * and the order of events with repeats folded ("EXECBUFFER*3"). Dumped to the file named by
 * VIRTGPU_EMU_STATS each time an emulated node is closed, so a test can check the sequence. */
#ifndef EMU_STATS_H
#define EMU_STATS_H

/* name must be a string literal */
void emu_stats_event(const char *name); /* counted and appended to the sequence */
void emu_stats_count(const char *name); /* counted only (annotations, e.g. command numbering) */
void emu_stats_dump(void);

#endif
