/*
 * serve/svg.c: a run's graph as inline SVG, drawn on the server.
 *
 * One column per stage (in stage order), one box per job task, coloured by
 * the task's state (html.c's stage_colour), linking to the task's page; an
 * arrow joins each stage to the next (the default order of §3: a stage
 * starts when the one before it is done).  Names are cut to fit a box and
 * escaped; the full name and state are in the box's <title> tooltip.
 *
 * Input: the run page's task query, columns 0 id, 1 stage_index,
 * 2 stage_name, 4 task_name, 5 stage, 10 gate.
 *
 * Locking: none.
 */
#define _GNU_SOURCE
#include "serve.h"

#include <stdlib.h>
#include <string.h>

#define BOX_W 190
#define BOX_H 34
#define COL_GAP 56
#define ROW_GAP 12
#define TOP 34
#define PAD 10

void
svg_graph(strbuf *sb, const PGresult *tasks)
{
	int n = PQntuples(tasks);
	int ncols = 0, maxrows = 0, col = -1, row = 0;
	int *colrows;
	const char *last_stage = NULL;
	int width, height;

	/* columns: a new one whenever stage_index changes (rows are ordered) */
	colrows = xcalloc((size_t) (n + 1), sizeof(int));
	for (int i = 0; i < n; i++)
	{
		if (!last_stage || strcmp(last_stage, PQgetvalue(tasks, i, 1)) != 0)
		{
			ncols++;
			last_stage = PQgetvalue(tasks, i, 1);
		}
		colrows[ncols - 1]++;
		if (colrows[ncols - 1] > maxrows)
			maxrows = colrows[ncols - 1];
	}
	width = PAD * 2 + ncols * BOX_W + (ncols > 0 ? ncols - 1 : 0) * COL_GAP;
	height = TOP + PAD + maxrows * (BOX_H + ROW_GAP);
	if (width < 200)
		width = 200;
	sb_printf(sb, "<svg id=\"graph\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
			  "viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"run graph\">\n"
			  "<defs><marker id=\"arrow\" markerWidth=\"8\" markerHeight=\"8\" refX=\"7\" refY=\"4\" "
			  "orient=\"auto\"><path d=\"M0,0 L8,4 L0,8 z\" fill=\"#57606a\"/></marker></defs>\n"
			  "<rect width=\"100%%\" height=\"100%%\" fill=\"#ffffff\"/>\n",
			  width, height, width, height);

	/* arrows between consecutive columns, at the middle of the first row */
	for (int c = 0; c + 1 < ncols; c++)
	{
		int x1 = PAD + c * (BOX_W + COL_GAP) + BOX_W;
		int y = TOP + BOX_H / 2;

		sb_printf(sb, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#57606a\" "
				  "stroke-width=\"2\" marker-end=\"url(#arrow)\"/>\n",
				  x1 + 4, y, x1 + COL_GAP - 6, y);
	}

	last_stage = NULL;
	for (int i = 0; i < n; i++)
	{
		const char *stage = PQgetvalue(tasks, i, 5);
		int x, y;
		char *label;

		if (!last_stage || strcmp(last_stage, PQgetvalue(tasks, i, 1)) != 0)
		{
			col++;
			row = 0;
			last_stage = PQgetvalue(tasks, i, 1);
			label = short_text(PQgetvalue(tasks, i, 2), 26);
			sb_printf(sb, "<text class=\"stage-name\" x=\"%d\" y=\"%d\" font-weight=\"bold\">",
					  PAD + col * (BOX_W + COL_GAP), TOP - 12);
			html_esc(sb, label);
			sb_puts(sb, "</text>\n");
			free(label);
		}
		x = PAD + col * (BOX_W + COL_GAP);
		y = TOP + row * (BOX_H + ROW_GAP);
		row++;
		sb_puts(sb, "<a href=\"/task/");
		html_esc(sb, PQgetvalue(tasks, i, 0));
		sb_puts(sb, "\"><g class=\"node\" data-id=\"");
		html_esc(sb, PQgetvalue(tasks, i, 0));
		sb_puts(sb, "\" data-stage=\"");
		html_esc(sb, stage);
		sb_puts(sb, "\"><title>");
		html_esc(sb, PQgetvalue(tasks, i, 4));
		sb_puts(sb, ": ");
		html_esc(sb, stage);
		if (!PQgetisnull(tasks, i, 10))
		{
			sb_puts(sb, " (waiting at the ");
			html_esc(sb, PQgetvalue(tasks, i, 10));
			sb_puts(sb, " gate)");
		}
		sb_printf(sb, "</title><rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" rx=\"6\" "
				  "fill=\"%s\" stroke=\"%s\" stroke-width=\"%d\"/>",
				  x, y, BOX_W, BOX_H, stage_colour(stage),
				  PQgetisnull(tasks, i, 10) ? "#57606a" : "#8250df",
				  PQgetisnull(tasks, i, 10) ? 1 : 3);
		label = short_text(PQgetvalue(tasks, i, 4), 22);
		sb_printf(sb, "<text x=\"%d\" y=\"%d\">", x + 8, y + 14);
		html_esc(sb, label);
		free(label);
		sb_printf(sb, "</text><text x=\"%d\" y=\"%d\" font-size=\"11\" fill=\"#24292f\">", x + 8,
				  y + 28);
		html_esc(sb, stage);
		if (!PQgetisnull(tasks, i, 10))
		{
			sb_puts(sb, " · ");
			html_esc(sb, PQgetvalue(tasks, i, 10));
			sb_puts(sb, " gate");
		}
		sb_puts(sb, "</text></g></a>\n");
	}
	if (n == 0)
		sb_printf(sb, "<text x=\"%d\" y=\"%d\">no tasks</text>\n", PAD, TOP);
	sb_puts(sb, "</svg>\n");
	free(colrows);
}
