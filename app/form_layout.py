"""Compact layout for the job form: labels and fields in two columns of even
width, and a section of rarely changed options shown on request.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPaintEvent
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSizePolicy,
    QStyle,
    QStyleOptionComboBox,
    QStylePainter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.qt_compat import emit_signal

# Characters a combo box shows before it elides its choice; the list shows all.
COMBO_MIN_CHARACTERS = 6
LABEL_COLUMNS = (0, 2)
# Pixels Qt's styles leave between a combo box's icon and its text.
ICON_GAP = 4


class ChoiceBox(QComboBox):
    """A combo box that shows a choice too long for its width by its name alone,
    without what its brackets add ("Final (full quality)" as "Final"), then elided
    ("Follow the subj…"), where QComboBox would cut it off; its list shows every
    choice whole."""

    def paintEvent(self, event: QPaintEvent) -> None:
        if self.isEditable():
            super().paintEvent(event)  # its line edit shows the text
            return
        painter = QStylePainter(self)
        option = QStyleOptionComboBox()
        self.initStyleOption(option)
        control = QStyle.ComplexControl.CC_ComboBox
        painter.drawComplexControl(control, option)
        field = self.style().subControlRect(
            control, option, QStyle.SubControl.SC_ComboBoxEditField, self
        )
        if not option.currentIcon.isNull():
            field.setLeft(field.left() + option.iconSize.width() + ICON_GAP)
        option.currentText = self.shown_text(option.currentText, field.width())
        painter.drawControl(QStyle.ControlElement.CE_ComboBoxLabel, option)

    def shown_text(self, text: str, width: int) -> str:
        """The choice as it fits in width pixels: whole, without its brackets, or
        elided."""
        metrics = self.fontMetrics()
        if metrics.horizontalAdvance(text) > width and " (" in text:
            text = text.split(" (", 1)[0]
        return metrics.elidedText(text, Qt.TextElideMode.ElideRight, width)


class OptionGrid(QGridLayout):
    """Label, field, label, field: a pair of options per row, or one field across
    the row. Combo boxes and spin boxes fill their column, so columns line up."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setColumnStretch(1, 1)
        self.setColumnStretch(3, 1)
        self.labels: dict[int, list[QLabel]] = {column: [] for column in LABEL_COLUMNS}
        self.choices: list[tuple[str, QComboBox]] = []
        self._row = 0

    def add_row(self, label: str, field: QWidget) -> None:
        """One field across both columns."""
        self._add(label, field, 0, span=3)
        self._row += 1

    def add_note(self, note: QWidget) -> None:
        """A line under the row before, aligned with its field."""
        self.addWidget(note, self._row, 1, 1, 3)
        self._row += 1

    def add_pair(self, first: tuple[str, QWidget], second: tuple[str, QWidget]) -> None:
        self._add(*first, 0, span=1)
        self._add(*second, 2, span=1)
        self._row += 1

    def add_span(self, widget: QWidget) -> None:
        """A widget across the whole grid, labels included."""
        self.addWidget(widget, self._row, 0, 1, 4)
        self._row += 1

    def _add(self, label: str, field: QWidget, column: int, span: int) -> None:
        title = QLabel(label)
        title.setBuddy(field)
        self.labels[column].append(title)
        self.addWidget(title, self._row, column)
        self.addWidget(field, self._row, column + 1, 1, span)
        if isinstance(field, QComboBox):
            self.choices.append((label, field))
        if isinstance(field, (QComboBox, QAbstractSpinBox)):
            fill_column(field)


def fill_column(field: QWidget) -> None:
    """Grow to the column's width; a combo box elides a long choice to fit."""
    if isinstance(field, QComboBox):
        policy = QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        field.setSizeAdjustPolicy(policy)
        field.setMinimumContentsLength(COMBO_MIN_CHARACTERS)
    field.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)


def align_label_columns(*grids: OptionGrid) -> None:
    """Give each grid's label columns the width of the widest label in any of
    them, so grids stacked one above the other line up."""
    for column in LABEL_COLUMNS:
        labels = [label for grid in grids for label in grid.labels[column]]
        width = max((label.sizeHint().width() for label in labels), default=0)
        for grid in grids:
            grid.setColumnMinimumWidth(column, width)


def side_by_side(*widgets: QWidget) -> QWidget:
    """Widgets in a row; a leading line edit or combo box takes the spare width."""
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    stretch_first = isinstance(widgets[0], (QLineEdit, QComboBox))
    if isinstance(widgets[0], QComboBox):
        fill_column(widgets[0])
    for index, widget in enumerate(widgets):
        layout.addWidget(widget, 1 if index == 0 and stretch_first else 0)
    if stretch_first:
        row.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
    else:
        layout.addStretch(1)
    return row


class OptionSection(QWidget):
    """Options behind a disclosure button, folded by default; while folded, a
    quiet line beside the button names each choice changed from its first."""

    expanded_changed = Signal(bool)

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.toggle_button = QToolButton()
        self.toggle_button.setText(title)
        self.toggle_button.setAutoRaise(True)
        self.toggle_button.setToolButtonStyle(
            Qt.ToolButtonStyle.ToolButtonTextBesideIcon
        )
        self.toggle_button.clicked.connect(self.toggle)
        self.summary_label = QLabel()
        self.summary_label.setWordWrap(True)
        self.summary_label.setEnabled(False)
        self.body = QWidget()
        self.grid = OptionGrid(self.body)
        self.grid.setContentsMargins(0, 0, 0, 0)

        header = QHBoxLayout()
        header.setContentsMargins(0, 0, 0, 0)
        header.addWidget(self.toggle_button, 0, Qt.AlignmentFlag.AlignLeft)
        header.addWidget(self.summary_label, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(header)
        layout.addWidget(self.body)
        self.set_expanded(False)

    def is_expanded(self) -> bool:
        return not self.body.isHidden()

    def toggle(self) -> None:
        self.set_expanded(not self.is_expanded())

    def set_expanded(self, expanded: bool) -> None:
        arrow = Qt.ArrowType.DownArrow if expanded else Qt.ArrowType.RightArrow
        self.toggle_button.setArrowType(arrow)
        self.body.setVisible(expanded)
        self.refresh_summary()
        emit_signal(self.expanded_changed, expanded)

    def watch_choices(self) -> None:
        """Keep the summary up to date with the grid's combo boxes."""
        for _, combo in self.grid.choices:
            combo.currentIndexChanged.connect(self.refresh_summary)
        self.refresh_summary()

    def refresh_summary(self) -> None:
        changed = [
            f"{label}: {combo.currentText()}"
            for label, combo in self.grid.choices
            if combo.currentIndex() > 0
        ]
        self.summary_label.setText("; ".join(changed))
        self.summary_label.setVisible(bool(changed) and not self.is_expanded())
